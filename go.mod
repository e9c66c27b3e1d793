module cellagent

go 1.25.0

require (
	github.com/creack/pty v1.1.24
	go.bug.st/serial v1.8.0
	golang.org/x/sys v0.43.0
)

require (
	github.com/spf13/pflag v1.1.0
	github.com/warthog618/sms v0.3.0
)
