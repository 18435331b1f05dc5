//! Reading provider usage objects and estimating tokens from characters.
