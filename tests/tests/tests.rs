//! One integration binary for every end-to-end suite.
