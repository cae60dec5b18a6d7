//! featherd module ABI (to be written).
