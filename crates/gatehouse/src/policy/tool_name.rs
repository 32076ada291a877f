//! Finding the tool a `tools/call` request targets (being written).
