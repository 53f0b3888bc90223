//! The live catalog: both tables of every migration, loaded over a
//! connection of the proxy's own, and checked against the mapping.

pub mod mapping;
pub mod types;
