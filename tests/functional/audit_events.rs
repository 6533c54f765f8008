//! Every event class of S3.1-35 R1 (A–I) produced by a real action against the running device.
