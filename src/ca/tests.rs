//! Tests of the CA: certificate contents, chains, persistence, rotation.
