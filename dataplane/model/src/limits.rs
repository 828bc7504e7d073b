//! DynamoDB's fixed service limits.

/// Maximum item size, attribute names and values included (400 KB).
pub const MAX_ITEM_SIZE: usize = 400 * 1024;
/// Maximum size of a partition key value in bytes.
pub const MAX_HASH_KEY_SIZE: usize = 2048;
/// Maximum size of a sort key value in bytes.
pub const MAX_RANGE_KEY_SIZE: usize = 1024;
/// Maximum nesting depth of documents (lists and maps).
pub const MAX_NESTING_DEPTH: usize = 32;
/// Maximum size of one Query/Scan result page before filtering (1 MB).
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Maximum keys in one BatchGetItem.
pub const MAX_BATCH_GET_KEYS: usize = 100;
/// Maximum requests in one BatchWriteItem.
pub const MAX_BATCH_WRITE_REQUESTS: usize = 25;
/// Maximum size of one request body accepted by the server (16 MB, as DynamoDB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Maximum local secondary indexes per table.
pub const MAX_LSIS: usize = 5;
/// Maximum global secondary indexes per table.
pub const MAX_GSIS: usize = 20;
/// Maximum tags per resource.
pub const MAX_TAGS: usize = 50;
