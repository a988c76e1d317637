{{/* Names and labels. */}}
{{- define "tokengate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tokengate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tokengate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokengate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tokengate.labels" -}}
{{ include "tokengate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tokengate.secretName" -}}
{{- default (include "tokengate.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{- define "tokengate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The tokengate.yaml config file. */}}
{{- define "tokengate.config" -}}
{{- $upstream := default (printf "http://127.0.0.1:%d" (int .Values.upstream.port)) .Values.upstream.url -}}
{{- $base := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.ports.proxy))
  "upstream" $upstream
  "admin" (dict "listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) "keys_file" "/etc/tokengate/secrets/admin-keys")
  "routes" .Values.routes
  "log" (dict "format" "json")
-}}
{{- if eq .Values.store.type "redis" -}}
{{- $_ := set $base "store" (dict "redis" (dict "url" "redis://set-by-env" "key_prefix" .Values.store.redis.keyPrefix)) -}}
{{- else -}}
{{- $_ := set $base "store" (dict "embedded" (dict "path" "/var/lib/tokengate/tokengate.redb")) -}}
{{- end -}}
{{- if or .Values.secret.pepper .Values.secret.existingSecret -}}
{{- $_ := set $base "tokens" (dict "pepper_file" "/etc/tokengate/secrets/pepper") -}}
{{- end -}}
{{- if .Values.identity -}}
{{- $identity := deepCopy .Values.identity -}}
{{- if or $identity.oidc $identity.sessions -}}
{{- $sessions := default (dict) $identity.sessions -}}
{{- $_ := set $sessions "keys_file" "/etc/tokengate/secrets/session-keys" -}}
{{- $_ := set $identity "sessions" $sessions -}}
{{- end -}}
{{- if and $identity.oidc (or .Values.secret.oidcClientSecret .Values.secret.existingSecret) -}}
{{- $_ := set $identity.oidc "client_secret_file" "/etc/tokengate/secrets/oidc-client-secret" -}}
{{- end -}}
{{- $_ := set $base "identity" $identity -}}
{{- end -}}
{{- toYaml (mergeOverwrite $base .Values.config) -}}
{{- end -}}

{{/* The tokengate container, without restartPolicy. */}}
{{- define "tokengate.containerSpec" -}}
name: tokengate
image: {{ include "tokengate.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/tokengate/tokengate.yaml"]
{{- if eq .Values.store.type "redis" }}
env:
  - name: TOKENGATE_STORE__REDIS__URL
    valueFrom:
      secretKeyRef:
        name: {{ include "tokengate.secretName" . }}
        key: redis-url
{{- end }}
ports:
  - { name: proxy, containerPort: {{ .Values.ports.proxy }}, protocol: TCP }
  - { name: admin, containerPort: {{ .Values.ports.admin }}, protocol: TCP }
startupProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 1
  failureThreshold: 30
livenessProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 10
readinessProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 5
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - { name: tokengate-config, mountPath: /etc/tokengate/tokengate.yaml, subPath: tokengate.yaml, readOnly: true }
  - { name: tokengate-secrets, mountPath: /etc/tokengate/secrets, readOnly: true }
  - { name: tokengate-data, mountPath: /var/lib/tokengate }
{{- end -}}

{{/* tokengate as a Kubernetes native sidecar: put it under initContainers. */}}
{{- define "tokengate.sidecar" -}}
- {{ include "tokengate.containerSpec" . | nindent 2 | trim }}
  restartPolicy: Always
{{- end -}}

{{/* tokengate as a classic second container: put it under containers. */}}
{{- define "tokengate.container" -}}
- {{ include "tokengate.containerSpec" . | nindent 2 | trim }}
{{- end -}}

{{/* The volumes tokengate mounts: put them under the pod's volumes. */}}
{{- define "tokengate.volumes" -}}
- name: tokengate-config
  configMap:
    name: {{ include "tokengate.fullname" . }}
- name: tokengate-secrets
  secret:
    secretName: {{ include "tokengate.secretName" . }}
- name: tokengate-data
{{- if and (eq .Values.store.type "embedded") .Values.store.embedded.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "tokengate.fullname" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}
