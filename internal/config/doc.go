// Package config holds the settings of ODI's daemons, read from a TOML file
// and overridden by command-line flags, and checks them.
//
// Loading never stops at the first mistake: unknown flags, unknown keys in
// the file, values that do not parse and settings that make no sense are all
// collected, so an operator fixes everything in one round. A TOML syntax
// error is the exception — the rest of the file cannot be read past it —
// and is reported with its line.
package config
