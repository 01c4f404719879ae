package main

import (
	"github.com/spf13/cobra"
	"go.uber.org/fx"
)

// frontDoorAvailable says whether the load balancer is built in; until the lb package
// offers its server, `vigil all` serves the gateway on the public port directly.
const frontDoorAvailable = false

// frontDoor is the load balancer in front of the gateway in `vigil all`.
func frontDoor() []fx.Option { return nil }

// extraCommands are the subcommands provided by other packages (vigil lb, vigil license).
func extraCommands(*globalFlags) []*cobra.Command { return nil }
