"""Wire-level fakes: real HTTP servers on loopback that speak each platform's protocol to its real client."""
