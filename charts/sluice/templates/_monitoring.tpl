{{/*
sluice.objectName: name of the PodMonitor and dashboard ConfigMap: the "name" key
of the context, else <release name>-sluice.
*/}}
{{- define "sluice.objectName" -}}
{{- get . "name" | default (printf "%s-sluice" .root.Release.Name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
sluice.podMonitor renders a PodMonitor (monitoring.coreos.com/v1) that scrapes the
agent's /metrics on the admin port, when sluice.podMonitor.enabled. The context
needs "selectorLabels": the labels that select your pods. Put it in a template
file of its own:

  {{- include "sluice.podMonitor" (merge (dict "selectorLabels" (include "myapp.selectorLabels" . | fromYaml)) $sluice) }}
*/}}
{{- define "sluice.podMonitor" -}}
{{- include "sluice.validate" . -}}
{{- $pm := .root.Values.sluice.podMonitor -}}
{{- if $pm.enabled -}}
{{- $selector := get . "selectorLabels" -}}
{{- if not $selector -}}
{{- fail "sluice: sluice.podMonitor.enabled is true; pass \"selectorLabels\" (the labels of your pods) in the dict given to sluice.podMonitor" -}}
{{- end -}}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ include "sluice.objectName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    app.kubernetes.io/component: sluice
    app.kubernetes.io/managed-by: {{ .root.Release.Service }}
    {{- with $pm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- toYaml $selector | nindent 6 }}
  podMetricsEndpoints:
    - port: sluice-admin
      path: /metrics
      interval: {{ $pm.interval }}
      {{- with $pm.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
{{- end -}}
{{- end -}}

{{/*
sluice.dashboard renders a ConfigMap holding the Grafana dashboard of the agent's
metrics, when sluice.dashboard.enabled. Put it in a template file of its own:

  {{- include "sluice.dashboard" $sluice }}
*/}}
{{- define "sluice.dashboard" -}}
{{- include "sluice.validate" . -}}
{{- $d := .root.Values.sluice.dashboard -}}
{{- if $d.enabled -}}
{{- $lib := dig "sluice" "Files" "" (.root.Subcharts | default dict) -}}
{{- if not $lib -}}
{{- fail "sluice: the sluice library chart is not a dependency of this chart under the name sluice; the dashboard file cannot be found" -}}
{{- end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "sluice.objectName" . }}-dashboard
  namespace: {{ $d.namespace | default .root.Release.Namespace }}
  labels:
    app.kubernetes.io/component: sluice
    app.kubernetes.io/managed-by: {{ .root.Release.Service }}
    {{- with $d.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $d.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
data:
  sluice.json: |-
    {{- $lib.Get "files/dashboard.json" | nindent 4 }}
{{- end -}}
{{- end -}}
