// Command ktrace shows where traces break in Kafka-connected systems.
package main

import (
	"os"

	"github.com/ktrace-dev/ktrace/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.SystemIO()))
}
