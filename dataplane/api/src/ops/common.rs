//! Helpers shared by the item operations.
