//! `bench`: the SFU and Janus under the same load, one after the other, on the same pinned
//! cores, measured from `/proc`, printed as tables and written with the raw JSON and a chart
//! under `bench/results/`. Run through `bench/run.sh`, which builds the release binaries.

pub mod chart;
pub mod measure;
pub mod recording;
pub mod report;
pub mod scenario;
pub mod sut;
