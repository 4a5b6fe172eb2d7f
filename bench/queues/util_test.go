package queues

import "os"

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "sluice-queue-bench") }
