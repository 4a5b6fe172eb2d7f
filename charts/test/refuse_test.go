package test

import (
	"strings"
	"testing"
)

// TestRefused: values that would break the agent or lose data fail at render
// time, with a message that says what to change.
func TestRefused(t *testing.T) {
	cases := []struct {
		name   string
		values string
		want   []string // substrings of the error
	}{
		{
			name:   "app port clashes with ingest port",
			values: "app:\n  ports:\n    - name: http\n      containerPort: 7101\n",
			want:   []string{"port 7101 is declared by the app and is also the sluice ingest port (sluice.ports.ingest)"},
		},
		{
			name:   "app port clashes with admin port",
			values: "app:\n  ports:\n    - containerPort: 8080\n    - containerPort: 7103\n",
			want:   []string{"port 7103 is declared by the app and is also the sluice admin port (sluice.ports.admin)"},
		},
		{
			name:   "moved admin port clashes with app port",
			values: "app:\n  ports:\n    - containerPort: 9000\nsluice:\n  ports:\n    admin: 9000\n",
			want:   []string{"port 9000 is declared by the app and is also the sluice admin port"},
		},
		{
			name:   "ingest and admin on one port",
			values: "sluice:\n  ports:\n    ingest: 7200\n    admin: 7200\n",
			want:   []string{"sluice.ports.ingest and sluice.ports.admin are both 7200"},
		},
		{
			name:   "size in decimal units",
			values: "sluice:\n  spool:\n    maxBytes: 1GB\n",
			want:   []string{"/spool/maxBytes", "'1GB' does not match pattern"},
		},
		{
			name:   "misspelt value",
			values: "sluice:\n  spool:\n    maxbytes: 2GiB\n",
			want:   []string{"/spool", "additional properties 'maxbytes' not allowed"},
		},
		{
			name:   "unknown volume type",
			values: "sluice:\n  spool:\n    volume:\n      type: hostPath\n",
			want:   []string{"/spool/volume/type", "value must be one of"},
		},
		{
			name:   "sizeLimit below the spool",
			values: "sluice:\n  spool:\n    volume:\n      sizeLimit: 1GiB\n",
			want:   []string{"sluice.spool.volume.sizeLimit 1GiB is below the 1199Mi the spool may use", "evicts"},
		},
		{
			name:   "claim storage below the spool",
			values: "sluice:\n  spool:\n    maxBytes: 10GiB\n    volume:\n      type: volumeClaimTemplate\n      storage: 10GiB\n",
			want:   []string{"sluice.spool.volume.storage 10GiB is below the"},
		},
		{
			name:   "segment larger than the spool",
			values: "sluice:\n  spool:\n    maxBytes: 4MiB\n    segmentBytes: 8MiB\n",
			want:   []string{"sluice.spool.segmentBytes (8388608 bytes) is larger than sluice.spool.maxBytes (4194304 bytes)"},
		},
		{
			name:   "chart-managed setting in env",
			values: "sluice:\n  env:\n    SLUICE_SPOOL_MAX_BYTES: 2GiB\n",
			want:   []string{"sluice.env.SLUICE_SPOOL_MAX_BYTES: SLUICE_SPOOL_MAX_BYTES is set by the chart; set sluice.spool.maxBytes instead"},
		},
		{
			name:   "drain timeout in env",
			values: "sluice:\n  env:\n    DRAIN_TIMEOUT: 1m\n",
			want:   []string{"SLUICE_DRAIN_TIMEOUT is set by the chart; set sluice.drain.timeoutSeconds instead"},
		},
		{
			name:   "variable twice in env",
			values: "sluice:\n  env:\n    SINKS: kafka\n    SLUICE_SINKS: file\n",
			want:   []string{"sluice.env sets SLUICE_SINKS twice"},
		},
		{
			name:   "secret variable also in env",
			values: "sluice:\n  env:\n    KAFKA_SASL_PASSWORD: hunter2\n  secretEnv:\n    - name: KAFKA_SASL_PASSWORD\n      secretName: kafka\n      key: password\n",
			want:   []string{"sluice.secretEnv[0]: SLUICE_KAFKA_SASL_PASSWORD is already set in sluice.env"},
		},
		{
			name:   "secretEnv entry without key",
			values: "sluice:\n  secretEnv:\n    - name: KAFKA_SASL_PASSWORD\n      secretName: kafka\n",
			want:   []string{"/secretEnv/0", "key"},
		},
		{
			name:   "lower-case env name",
			values: "sluice:\n  env:\n    sinks: kafka\n",
			want:   []string{"'sinks' does not match pattern"},
		},
		{
			name:   "grace period shorter than app shutdown + drain",
			values: "terminationGracePeriodSeconds: 30\napp:\n  shutdownSeconds: 15\n",
			want:   []string{"terminationGracePeriodSeconds 30 is too short: the app needs 15 s to stop, then sluice drains for up to 20 s (sluice.drain.timeoutSeconds), plus a 10 s margin; use at least 45"},
		},
		{
			name:   "claim spool without fsGroup",
			values: "podSecurityContext:\n  fsGroup: null\nsluice:\n  spool:\n    volume:\n      type: volumeClaimTemplate\n",
			want:   []string{"a volumeClaimTemplate spool needs fsGroup: 65532 in the pod securityContext"},
		},
		{
			name:   "claim spool with another fsGroup",
			values: "podSecurityContext:\n  fsGroup: 1000\nsluice:\n  spool:\n    volume:\n      type: existingClaim\n      claimName: spool\n",
			want:   []string{"the pod securityContext has fsGroup: 1000 but the agent runs as group 65532"},
		},
		{
			name:   "existing claim without a name",
			values: "sluice:\n  spool:\n    volume:\n      type: existingClaim\n",
			want:   []string{"set sluice.spool.volume.claimName to the name of the PersistentVolumeClaim"},
		},
		{
			name:   "claim name with emptyDir",
			values: "sluice:\n  spool:\n    volume:\n      claimName: spool\n",
			want:   []string{"sluice.spool.volume.claimName is \"spool\" but the volume type is emptyDir"},
		},
		{
			name:   "one existing claim for several pods",
			values: "replicaCount: 2\nsluice:\n  spool:\n    volume:\n      type: existingClaim\n      claimName: spool\n",
			want:   []string{"two agents never share a spool"},
		},
		{
			name:   "PodMonitor interval",
			values: "sluice:\n  podMonitor:\n    enabled: true\n    interval: often\n",
			want:   []string{"/podMonitor/interval"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, readValues(t, tc.values))
			if err == nil {
				t.Fatalf("values rendered, want an error:\n%s", tc.values)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestAccepted: values near the refused ones that must render.
func TestAccepted(t *testing.T) {
	cases := map[string]string{
		"app ports apart from sluice's": "app:\n  ports:\n    - name: http\n      containerPort: 8080\n",
		"moved sluice ports":            "app:\n  ports:\n    - containerPort: 7101\nsluice:\n  ports:\n    ingest: 7201\n    admin: 7203\n",
		"explicit grace period":         "terminationGracePeriodSeconds: 45\napp:\n  shutdownSeconds: 15\n",
		"explicit sizeLimit":            "sluice:\n  spool:\n    volume:\n      sizeLimit: 2GiB\n",
		"byte counts as numbers":        "sluice:\n  spool:\n    maxBytes: 536870912\n    segmentBytes: 1048576\n    deadLetterMaxBytes: 16777216\n",
		"existing claim":                "sluice:\n  spool:\n    volume:\n      type: existingClaim\n      claimName: orders-spool\n",
		"no drain":                      "sluice:\n  drain:\n    timeoutSeconds: 0\n",
		"image digest":                  "sluice:\n  image:\n    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := render(t, readValues(t, values))
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if name != "image digest" {
				checkPod(t, r)
			}
		})
	}
}
