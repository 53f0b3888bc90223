//! MySQL client/server protocol codec (being written).
