//! Switchyard's consistency engine: chunked table diff, drill-down to rows
//! and columns, and repair through the same row-image sync as the mirror.
//!
//! It never writes except through repair. Nothing is implemented yet; the
//! crate exists so the workspace has its final shape.
