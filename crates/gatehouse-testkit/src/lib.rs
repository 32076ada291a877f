//! Test authorization server (being written).
