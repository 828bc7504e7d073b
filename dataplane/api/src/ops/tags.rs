//! TagResource, UntagResource, ListTagsOfResource.
//! (Being written by the control-plane engineer.)

use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::request::Request;
use crate::Api;

fn pending(op: &str) -> ApiError {
    ApiError::new(
        ErrorKind::UnknownOperation,
        format!("{op} is not implemented yet"),
    )
}

pub async fn tag_resource(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("TagResource"))
}
pub async fn untag_resource(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("UntagResource"))
}
pub async fn list_tags_of_resource(_api: &Api, _req: Request) -> Result<Value, ApiError> {
    Err(pending("ListTagsOfResource"))
}
