//! rte-pm
