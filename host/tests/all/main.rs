//! Integration tests of the dualwrite library that need no service: the
//! checkpoint store on real sled in temporary directories, and the OData
//! `$filter` parser. Tests against the emulators live in `tests/`.

mod checkpoint;
mod initial_copy;
mod intent;
mod odata_filter;
