package main

// apiAfterQueued runs between an SMS from the local API reaching the disk
// and the client hearing so: nil except in a binary built with the
// apikill tag, whose test kills the agent at that point.
var apiAfterQueued func()
