{{/*
sluice.bytes parses a size of the values into bytes.
Input: dict "value" <size> "what" <value path for the error message>.
A size is a whole number of bytes or a number with a binary unit
(B, Ki, KiB, Mi, MiB, Gi, GiB, Ti, TiB).
*/}}
{{- define "sluice.bytes" -}}
{{- $v := .value -}}
{{- if kindIs "string" $v -}}
{{- if not (regexMatch "^[0-9]+(B|Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB)?$" $v) -}}
{{- fail (printf "sluice: %s: %q is not a size; write a whole number of bytes or a binary unit such as 512MiB or 1GiB" .what $v) -}}
{{- end -}}
{{- $digits := regexFind "^[0-9]+" $v -}}
{{- $unit := trimPrefix $digits $v | trimSuffix "B" -}}
{{- $n := mul (atoi $digits) (get (dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $unit) -}}
{{- if le $n 0 -}}
{{- fail (printf "sluice: %s: %q must be larger than zero" .what $v) -}}
{{- end -}}
{{- $n -}}
{{- else if or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- if or (le (float64 $v) 0.0) (ne (float64 (int64 $v)) (float64 $v)) -}}
{{- fail (printf "sluice: %s: %v must be a whole number of bytes larger than zero" .what $v) -}}
{{- end -}}
{{- int64 $v -}}
{{- else -}}
{{- fail (printf "sluice: %s: %v is not a size; write a whole number of bytes or a binary unit such as 512MiB or 1GiB" .what $v) -}}
{{- end -}}
{{- end -}}

{{/*
sluice.spoolMinBytes: the bytes the spool directory may hold, plus a margin:
spool cap + two segments (the open one and the one being cut) + dead-letter cap,
plus 10% of that or 64Mi, whichever is larger; rounded up to whole MiB.
Input: the calling context dict.
*/}}
{{- define "sluice.spoolMinBytes" -}}
{{- $s := .root.Values.sluice.spool -}}
{{- $spool := int64 (include "sluice.bytes" (dict "value" $s.maxBytes "what" "sluice.spool.maxBytes")) -}}
{{- $segment := int64 (include "sluice.bytes" (dict "value" $s.segmentBytes "what" "sluice.spool.segmentBytes")) -}}
{{- $dead := int64 (include "sluice.bytes" (dict "value" $s.deadLetterMaxBytes "what" "sluice.spool.deadLetterMaxBytes")) -}}
{{- if gt $segment $spool -}}
{{- fail (printf "sluice: sluice.spool.segmentBytes (%d bytes) is larger than sluice.spool.maxBytes (%d bytes)" $segment $spool) -}}
{{- end -}}
{{- $total := add $spool (mul 2 $segment) $dead -}}
{{- $withMargin := add $total (max (div $total 10) 67108864) -}}
{{- mul (div (add $withMargin 1048575) 1048576) 1048576 -}}
{{- end -}}

{{/*
sluice.spoolSizeLimit: the size of the spool volume as a Kubernetes quantity: the
explicit sluice.spool.volume.sizeLimit, else the computed minimum in Mi.
Use it for the storage request of your own claim. Input: the calling context dict.
*/}}
{{- define "sluice.spoolSizeLimit" -}}
{{- $vol := .root.Values.sluice.spool.volume -}}
{{- $bytes := int64 (include "sluice.spoolMinBytes" .) -}}
{{- if and $vol.sizeLimit (eq $vol.type "emptyDir") -}}
{{- $bytes = int64 (include "sluice.bytes" (dict "value" $vol.sizeLimit "what" "sluice.spool.volume.sizeLimit")) -}}
{{- else if and $vol.storage (ne $vol.type "emptyDir") -}}
{{- $bytes = int64 (include "sluice.bytes" (dict "value" $vol.storage "what" "sluice.spool.volume.storage")) -}}
{{- end -}}
{{- include "sluice.quantity" $bytes -}}
{{- end -}}

{{/*
sluice.quantity: a byte count as a Kubernetes quantity, in Mi when whole.
*/}}
{{- define "sluice.quantity" -}}
{{- $bytes := int64 . -}}
{{- if eq (mod $bytes 1048576) 0 -}}
{{- div $bytes 1048576 }}Mi
{{- else -}}
{{- $bytes -}}
{{- end -}}
{{- end -}}

{{/*
sluice.spoolVolumeName: the pod volume the agent mounts.
*/}}
{{- define "sluice.spoolVolumeName" -}}
{{- $vol := .root.Values.sluice.spool.volume -}}
{{- if eq $vol.type "volumeClaimTemplate" -}}
{{- $vol.claimName | default "sluice-spool" -}}
{{- else -}}
sluice-spool
{{- end -}}
{{- end -}}

{{/*
sluice.volumes renders the spool volume as an item of the pod's `volumes` list
(nothing for a claim template: the StatefulSet provides that volume).
Input: the calling context dict.

  volumes:
    {{- include "sluice.volumes" $sluice | nindent 8 }}
*/}}
{{- define "sluice.volumes" -}}
{{- include "sluice.validate" . -}}
{{- $vol := .root.Values.sluice.spool.volume -}}
{{- if eq $vol.type "emptyDir" -}}
- name: {{ include "sluice.spoolVolumeName" . }}
  emptyDir:
    sizeLimit: {{ include "sluice.spoolSizeLimit" . }}
{{- else if eq $vol.type "existingClaim" -}}
- name: {{ include "sluice.spoolVolumeName" . }}
  persistentVolumeClaim:
    claimName: {{ $vol.claimName }}
{{- end -}}
{{- end -}}

{{/*
sluice.volumeClaimTemplate renders the spool's claim as an item of a StatefulSet's
`volumeClaimTemplates` list when sluice.spool.volume.type is volumeClaimTemplate
(nothing otherwise). Input: the calling context dict.

  volumeClaimTemplates:
    {{- include "sluice.volumeClaimTemplate" $sluice | nindent 4 }}
*/}}
{{- define "sluice.volumeClaimTemplate" -}}
{{- include "sluice.validate" . -}}
{{- $vol := .root.Values.sluice.spool.volume -}}
{{- if eq $vol.type "volumeClaimTemplate" -}}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata:
    name: {{ include "sluice.spoolVolumeName" . }}
  spec:
    accessModes:
      - ReadWriteOnce
    {{- with $vol.storageClassName }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ include "sluice.spoolSizeLimit" . }}
{{- end -}}
{{- end -}}
