// Command odi runs the pieces of an ODI network: directories, relays, and
// a whole network on loopback for development (odi dev).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/opendistribution/odi/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
