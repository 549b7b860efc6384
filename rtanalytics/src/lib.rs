//! `rtanalytics`: a ready-to-run analytics service built from the project's GStreamer
//! elements (`rturisrcbin` → one shared, batched `rtinfer` → `rttrack` → `rtalert`), with a
//! config file, an HTTP API, Prometheus metrics, health checks, clean stops and sharding.
//! The binary (`src/main.rs`) is the command line around this library.

pub mod api;
pub mod config;
pub mod events;
pub mod hls;
pub mod metrics;
pub mod procstat;
pub mod restream;
pub mod service;
pub mod shard;
