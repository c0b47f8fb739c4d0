//! Mesh configuration: raw serde types → validated [`model::MeshConfig`].
pub mod model;
