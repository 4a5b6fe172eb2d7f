{{/*
sluice.image: repository:tag or repository@digest. The tag defaults to the
appVersion of this library chart.
*/}}
{{- define "sluice.image" -}}
{{- $image := .root.Values.sluice.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- $lib := "" -}}
{{- $subcharts := .root.Subcharts | default dict -}}
{{- if hasKey $subcharts "sluice" -}}
{{- $lib = (get $subcharts "sluice").Chart.AppVersion -}}
{{- end -}}
{{- $tag := $image.tag | default $lib | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $image.repository (required "sluice: set sluice.image.tag (no appVersion to default to)" $tag) -}}
{{- end -}}
{{- end -}}

{{/*
sluice.env renders the agent's environment: first the settings the chart derives
from values, then sluice.env sorted by name, then sluice.secretEnv.
*/}}
{{- define "sluice.env" -}}
{{- $v := .root.Values.sluice -}}
{{- $s := $v.spool -}}
- name: SLUICE_LISTEN
  value: {{ printf "127.0.0.1:%d" (int $v.ports.ingest) | quote }}
- name: SLUICE_ADMIN_LISTEN
  value: {{ printf ":%d" (int $v.ports.admin) | quote }}
- name: SLUICE_SPOOL_DIR
  value: {{ $s.mountPath | quote }}
- name: SLUICE_SPOOL_MAX_BYTES
  value: {{ include "sluice.bytes" (dict "value" $s.maxBytes "what" "sluice.spool.maxBytes") | quote }}
- name: SLUICE_SPOOL_SEGMENT_BYTES
  value: {{ include "sluice.bytes" (dict "value" $s.segmentBytes "what" "sluice.spool.segmentBytes") | quote }}
- name: SLUICE_DEADLETTER_MAX_BYTES
  value: {{ include "sluice.bytes" (dict "value" $s.deadLetterMaxBytes "what" "sluice.spool.deadLetterMaxBytes") | quote }}
- name: SLUICE_DRAIN_TIMEOUT
  value: {{ printf "%ds" (int $v.drain.timeoutSeconds) | quote }}
{{- if not $v.native }}
- name: SLUICE_DRAIN_ACCEPT
  value: "true"
{{- end }}
{{- if (($v.resources | default dict).limits | default dict).memory }}
{{- /* The Go runtime collects harder as the heap nears the container's limit
       instead of letting the kernel kill the agent. */}}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- end }}
{{- $names := dict -}}
{{- range $k, $val := $v.env -}}
{{- $_ := set $names (include "sluice.envName" $k) $val -}}
{{- end -}}
{{- range $name := keys $names | sortAlpha }}
- name: {{ $name }}
  value: {{ include "sluice.envValue" (get $names $name) | quote }}
{{- end }}
{{- range $v.secretEnv }}
- name: {{ include "sluice.envName" .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
      {{- if hasKey . "optional" }}
      optional: {{ .optional }}
      {{- end }}
{{- end }}
{{- end -}}

{{/*
sluice.container renders the agent container as one item of a container list.
Input: the calling context dict (see _context.tpl). Where the item belongs depends
on sluice.native; sluice.initContainers and sluice.containers place it for you.
*/}}
{{- define "sluice.container" -}}
{{- include "sluice.validate" . -}}
{{- $v := .root.Values.sluice -}}
{{- $p := $v.probes -}}
- name: sluice
  image: {{ include "sluice.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.native }}
  restartPolicy: Always
  {{- end }}
  args:
    - run
  ports:
    - name: sluice-admin
      containerPort: {{ int $v.ports.admin }}
      protocol: TCP
  env:
    {{- include "sluice.env" . | nindent 4 }}
  {{- with $v.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: {{ include "sluice.spoolVolumeName" . }}
      mountPath: {{ $v.spool.mountPath }}
  startupProbe:
    httpGet:
      path: /readyz
      port: sluice-admin
    {{- toYaml $p.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /livez
      port: sluice-admin
    {{- toYaml $p.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: sluice-admin
    {{- toYaml $p.readiness | nindent 4 }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  terminationMessagePolicy: FallbackToLogsOnError
{{- end -}}

{{/*
sluice.initContainers: the agent container when it runs as a native sidecar
(sluice.native, the default), else nothing. Put it in your pod's initContainers:

  initContainers:
    {{- include "sluice.initContainers" $sluice | nindent 8 }}
*/}}
{{- define "sluice.initContainers" -}}
{{- if .root.Values.sluice.native -}}
{{- include "sluice.container" . -}}
{{- else -}}
{{- include "sluice.validate" . -}}
{{- end -}}
{{- end -}}

{{/*
sluice.containers: the agent container when it runs as a classic sidecar
(sluice.native false), else nothing. Put it after your app's containers:

  containers:
    - name: app
      ...
    {{- include "sluice.containers" $sluice | nindent 8 }}
*/}}
{{- define "sluice.containers" -}}
{{- if not .root.Values.sluice.native -}}
{{- include "sluice.container" . -}}
{{- else -}}
{{- include "sluice.validate" . -}}
{{- end -}}
{{- end -}}

{{/*
sluice.appEnv: environment for the app's container: SLUICE_URL, the base URL to
push to (http://127.0.0.1:<ingest port>).

  env:
    {{- include "sluice.appEnv" $sluice | nindent 12 }}
*/}}
{{- define "sluice.appEnv" -}}
{{- include "sluice.validate" . -}}
- name: SLUICE_URL
  value: {{ printf "http://127.0.0.1:%d" (int .root.Values.sluice.ports.ingest) | quote }}
{{- end -}}

{{/*
sluice.terminationGracePeriodSeconds: the pod's grace period. The app's containers
stop first, then the agent drains for up to sluice.drain.timeoutSeconds, so the
minimum is appShutdownSeconds + drain timeout + 10 s. An explicit
terminationGracePeriodSeconds in the context is used when it is at least that,
and refused otherwise.

  terminationGracePeriodSeconds: {{ include "sluice.terminationGracePeriodSeconds" $sluice }}
*/}}
{{- define "sluice.terminationGracePeriodSeconds" -}}
{{- include "sluice.validate" . -}}
{{- $app := int (get . "appShutdownSeconds" | default 0) -}}
{{- $drain := int .root.Values.sluice.drain.timeoutSeconds -}}
{{- $min := add $app $drain 10 -}}
{{- $want := int (get . "terminationGracePeriodSeconds" | default 0) -}}
{{- if eq $want 0 -}}
{{- $min -}}
{{- else if lt $want (int $min) -}}
{{- fail (printf "sluice: terminationGracePeriodSeconds %d is too short: the app needs %d s to stop, then sluice drains for up to %d s (sluice.drain.timeoutSeconds), plus a 10 s margin; use at least %d, or 0 to compute it" $want $app $drain $min) -}}
{{- else -}}
{{- $want -}}
{{- end -}}
{{- end -}}
