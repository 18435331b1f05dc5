//! The price catalog and the cost of an event.
