{{/* The ConfigMap and chart-managed Secret; rendered twice: for the release, and as hook copies
the pre-install migration Job can mount (release objects do not exist yet at that point).
(dict "root" $ "hook" false) */}}

{{- define "acoustid.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation{{ if .deleteOnSuccess }},hook-succeeded{{ end }}
{{- end -}}

{{- define "acoustid.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "acoustid.fullname" .root }}{{ if .hook }}-migrations{{ end }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" (dict "root" .root "component" "config") | nindent 4 }}
  {{- if .hook }}
  annotations:
    {{- include "acoustid.hookAnnotations" (dict "weight" -10 "deleteOnSuccess" true) | nindent 4 }}
  {{- end }}
data:
  acoustid.conf: |
    {{- include "acoustid.conf" .root | nindent 4 }}
{{- end -}}

{{- define "acoustid.secret" -}}
{{- $data := include "acoustid.secretData" .root | fromYaml }}
{{- if $data }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "acoustid.fullname" .root }}{{ if .hook }}-migrations{{ end }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "acoustid.labels" (dict "root" .root "component" "config") | nindent 4 }}
  {{- if .hook }}
  annotations:
    {{- include "acoustid.hookAnnotations" (dict "weight" -10 "deleteOnSuccess" true) | nindent 4 }}
  {{- end }}
type: Opaque
data:
  {{- toYaml $data | nindent 2 }}
{{- end }}
{{- end -}}
