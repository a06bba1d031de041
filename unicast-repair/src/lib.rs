//! Unicast delivery and repair: HTTP(S) download with Range and resume,
//! 3GPP TS 26.346 symbol-based file repair, reception reports, and the
//! client that UEs use. Defines the `ObjectSource` trait that the origin
//! implements, so a repair server can run alone against a shared blob store.
