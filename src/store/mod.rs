//! The cache tier.
