//! Simulation: replay requests under other policies and compare the decisions.
