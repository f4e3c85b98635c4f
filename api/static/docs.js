// Starts Swagger UI on /docs over /openapi.json. A file rather than an inline script: the page's
// Content-Security-Policy (api/routes/meta.py) runs scripts from this origin only.
(function () {
  "use strict";
  // This file is <root>/docs/assets/docs.js: the document is found relative to it, so the page works
  // on any host and port.
  var openapi = new URL("../../openapi.json", document.currentScript.src).href;
  window.ui = SwaggerUIBundle({
    url: openapi,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    filter: true,
    displayRequestDuration: true,
    // No badge fetched from a public validator (the page allows nothing beyond this origin anyway).
    validatorUrl: null,
  });
})();
