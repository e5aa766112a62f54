//! The built-in model zoo: the lightweight CNN families with deterministic random weights.
