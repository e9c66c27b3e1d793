// Package firmware holds what a gateway image carries for cellagent: the
// systemd unit and its pppd drop-in, the udev rules for the BG96's USB
// ports, the default configuration, and the Debian maintainer scripts that
// scripts/deb packs with them (README.md lists them).
//
// It has no Go code of its own. Its tests check those files with the tools
// that consume them (systemd-analyze, dpkg-deb, qemu-user) and run the
// packaged ARM binaries against the BG96 simulator, so that what is tested
// is what ships.
package firmware
