//! End-to-end tests of the real binaries (arrive with the cluster issue).
