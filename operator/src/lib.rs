//! The Partita operator: reconciles `Table`, `GlobalTable` and `AccessPolicy`
//! resources into the objects that run Partita's data plane.
//!
//! The Table reconcile is a pipeline (STYLE.md):
//! [`validate`] (pure: CR → [`validate::ValidatedTable`]) → [`build`] (pure:
//! model → desired objects, one file per Kubernetes kind) → [`apply`]
//! (server-side apply with one field manager, orphan cleanup) → [`status`]
//! (conditions from what was applied and observed). [`global`] is the same
//! pipeline for `GlobalTable` resources and the gateway's replication file.
//! The controllers in
//! [`controller`] drive it; [`metrics`] and [`leader`] are the process's
//! plumbing. This crate knows Kubernetes; the data plane's formats come from
//! `partita-topology`. [`tls`] issues the internal RPC's mTLS certificates.

pub mod apply;
pub mod build;
pub mod config;
pub mod controller;
pub mod crd;
pub mod definition;
pub mod global;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod status;
pub mod tls;
pub mod validate;
