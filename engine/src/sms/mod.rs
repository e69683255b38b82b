//! SMS text rules: GSM 03.38 / UCS-2 encoding and segmentation.

pub mod encoding;
pub mod template;
