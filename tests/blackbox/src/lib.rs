//! Shared harness for black-box tests.
