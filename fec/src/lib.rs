//! Forward error correction for dms (work in progress).
