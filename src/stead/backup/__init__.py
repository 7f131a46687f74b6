"""`stead backup` and `stead restore`: one archive holding everything a server stores, taken while
it serves, and restored into an empty target."""
