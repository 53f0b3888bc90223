//! Statement classification and routing decisions. Pure functions: no IO,
//! no clock but what the caller passes in.

pub mod classify;
pub mod fingerprint;
