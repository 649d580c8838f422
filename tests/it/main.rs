//! devenv's integration tests, one crate (one binary to build and link), one module per area.
//! Each module says what it runs against: the simulated world (`sim_…` tests), real servers and
//! processes, the real Docker engine (`real_engine_…`), real Helm renders of the pinned charts.
//! `common` is the shared harness: an in-process run (`Lab`), the real binary (`Bin`), temp dirs.

mod adapters;
mod adversarial;
mod apiserver;
mod charts;
mod common;
mod config_corpus;
mod data_dir;
mod docker_engine;
mod doctor;
mod first_day;
mod front_door;
mod fuzz;
mod image_load;
mod kube_api;
mod plan;
mod probes;
mod reliability;
mod sim_cache;
mod sim_components;
mod sim_many;
mod sim_optional;
mod sim_run;
mod sim_signals;
mod sim_up;
mod tools_install;
