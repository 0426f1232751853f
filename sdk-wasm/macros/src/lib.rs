//! Proc macros of ohm-sdk.
