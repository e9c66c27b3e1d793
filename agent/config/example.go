package config

import _ "embed"

// Example is a commented configuration file with every key at its default.
//
//go:embed example.toml
var Example string
