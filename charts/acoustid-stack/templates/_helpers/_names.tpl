{{/* Names, labels and images. */}}

{{- define "acoustid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* `<release>-<chart>` (or just the release when it already contains the chart name). */}}
{{- define "acoustid.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: (dict "root" $ "component" "api"). */}}
{{- define "acoustid.componentName" -}}
{{- printf "%s-%s" (include "acoustid.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: (dict "root" $ "component" "api"). */}}
{{- define "acoustid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "acoustid.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of an object: (dict "root" $ "component" "api"). */}}
{{- define "acoustid.labels" -}}
{{ include "acoustid.selectorLabels" . }}
app.kubernetes.io/part-of: acoustid
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Image reference: (dict "image" .Values.image "root" $); a digest wins over the tag. */}}
{{- define "acoustid.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Headless Service (and host name) of index shard N: (dict "root" $ "shard" 0). */}}
{{- define "acoustid.indexShardName" -}}
{{- printf "%s-index-%d" (include "acoustid.fullname" .root) (int .shard) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
