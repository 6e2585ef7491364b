{{/* Pod building blocks shared by every workload: restricted Pod Security, config, secrets. */}}

{{/* Pod-level securityContext: the restricted Pod Security Standard. uid 1000 is the image's user. */}}
{{- define "acoustid.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "acoustid.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod spec fields every pod of ours has (no Kubernetes API access needed by any of them). */}}
{{- define "acoustid.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- include "acoustid.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ kindIs "string" . | ternary . .name }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Spread replicas over zones and nodes: (dict "root" $ "component" "api"). */}}
{{- define "acoustid.topologySpread" -}}
{{- $ctx := . -}}
{{- with .root.Values.topologySpreadKeys -}}
topologySpreadConstraints:
  {{- range . }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "acoustid.selectorLabels" $ctx | nindent 8 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Env of app containers: (dict "root" $ "hook" false). */}}
{{- define "acoustid.appEnv" -}}
- name: ACOUSTID_CONFIG
  value: /etc/acoustid/config/acoustid.conf
{{- range $file, $c := include "acoustid.credentials" . | fromYaml }}
- name: {{ $c.env }}
  value: /etc/acoustid/secrets/{{ $file }}
{{- end }}
{{- end -}}

{{- define "acoustid.appVolumeMounts" -}}
- name: config
  mountPath: /etc/acoustid/config
  readOnly: true
{{- if include "acoustid.credentials" . | fromYaml }}
- name: secrets
  mountPath: /etc/acoustid/secrets
  readOnly: true
{{- end }}
# The root filesystem is read-only; the shutdown file and temporary files live here.
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Volumes of app pods: (dict "root" $ "hook" false). */}}
{{- define "acoustid.appVolumes" -}}
- name: config
  configMap:
    name: {{ include "acoustid.fullname" .root }}{{ if .hook }}-migrations{{ end }}
{{- with include "acoustid.credentials" . | fromYaml }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range $file, $c := . }}
      - secret:
          name: {{ $c.secret }}
          items:
            - key: {{ $c.key }}
              path: {{ $file }}
      {{- end }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/* Probes exactly as the seed: liveness /_health_docker 30/10/5/3, readiness /_health_ro 10/5/3/2. */}}
{{- define "acoustid.serverProbes" -}}
livenessProbe:
  httpGet:
    path: /_health_docker
    port: http
  initialDelaySeconds: 30
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /_health_ro
    port: http
  initialDelaySeconds: 10
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Metrics and /_health port of worker and cron (`run worker|cron --metrics-port`). */}}
{{- define "acoustid.metricsPort" -}}9100{{- end -}}

{{/* worker and cron: /_health on the metrics port answers 503 once the main loop has not turned
for --health-max-age seconds (a stuck consumer or job); waiting out an outage still turns it. */}}
{{- define "acoustid.progressProbes" -}}
livenessProbe:
  httpGet:
    path: /_health
    port: metrics
  periodSeconds: 30
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /_health
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* One app container running `acoustid-stack run <component>`: (dict "root" $ "component" "api" "resources" ... "port" 5000),
or with "metricsPort" 9100 for worker and cron (metrics and /_health). */}}
{{- define "acoustid.appContainer" -}}
- name: {{ .component }}
  image: {{ include "acoustid.image" (dict "image" .root.Values.image "root" .root) }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: ["acoustid-stack"]
  args: ["run", {{ .component | quote }}{{ with .metricsPort }}, "--metrics-host", "0.0.0.0", "--metrics-port", {{ . | quote }}{{ end }}]
  env:
    {{- include "acoustid.appEnv" (dict "root" .root) | nindent 4 }}
  {{- if .port }}
  ports:
    - name: http
      containerPort: {{ .port }}
      protocol: TCP
  {{- include "acoustid.serverProbes" . | nindent 2 }}
  {{- end }}
  {{- with .metricsPort }}
  ports:
    - name: metrics
      containerPort: {{ . }}
      protocol: TCP
  {{- include "acoustid.progressProbes" . | nindent 2 }}
  {{- end }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- include "acoustid.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    {{- include "acoustid.appVolumeMounts" (dict "root" .root) | nindent 4 }}
{{- end -}}
