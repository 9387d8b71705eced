// Swagger UI for /openapi.json, from the copy this server bundles (no CDN).
/* global SwaggerUIBundle */
// validatorUrl: null keeps the page from calling the public validator: offline, private.
SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
