{{/*
Name of the chart, overridable by nameOverride.
*/}}
{{- define "sluice-example.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "sluice-example.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label: name-version.
*/}}
{{- define "sluice-example.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "sluice-example.labels" -}}
helm.sh/chart: {{ include "sluice-example.chart" . }}
{{ include "sluice-example.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "sluice-example.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice-example.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Spool mode: a claim template needs a StatefulSet.
*/}}
{{- define "sluice-example.kind" -}}
{{- if eq .Values.sluice.spool.volume.type "volumeClaimTemplate" -}}
StatefulSet
{{- else -}}
Deployment
{{- end -}}
{{- end }}
