#![allow(unreachable_pub)] // test modules share helpers with `pub`; nothing here is an API

//! The billing server's test suite, one binary (shared fixtures in `common`). Storage tests run
//! against SQLite (temp files) and PostgreSQL (`GATEHOUSE_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, a fresh schema per test).

mod audit;
mod cache;
mod coherence;
mod common;
mod outage;
mod outbox;
mod storage;
mod tenancy_props;
mod tools;
