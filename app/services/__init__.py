"""What the routers call: one function per operation, torch work inside, no HTTP."""
