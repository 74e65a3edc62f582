/* orderbridge storefront form. No dependencies, no build step.
 *
 * Enhances every <form data-orderbridge-form> the intake rendered: checks the fields with the
 * limits the page carries (the same the server enforces), posts with fetch, puts the server's field
 * errors next to their fields, shows a spinner while submitting, then follows the provider's
 * checkout redirect or shows a confirmation that polls the order's status. Prices are the server's
 * (the page carries them): the script only shows them in the browser's own format and keeps the
 * total current as items and quantities change. Without this script the same form still works as a
 * plain HTML post.
 */
(function () {
  "use strict";

  var POLL_FIRST_MS = 1000;
  var POLL_MAX_MS = 5000;
  var POLL_GIVE_UP_MS = 10 * 60 * 1000;
  var TEXT = {
    required: "This field is required.",
    email: "Enter a valid email address.",
    pattern: "Use the expected format.",
    number: "Enter a whole number.",
    noItems: "Choose at least one item.",
    failed: "Something went wrong. Please try again.",
    network: "We could not reach the shop. Check your connection and try again.",
    submitting: "Placing your order\u2026",
    redirecting: "Taking you to payment\u2026",
    pending: "We have your order and are placing it now. This page updates by itself.",
    created: "Your order has been created.",
    checking:
      "We are confirming your order with the shop. Please do not order again: you will hear from the shop.",
    partial:
      "We have received your order. The shop is completing part of it and will be in touch if anything is needed. Please do not order again.",
    orderFailed: "We could not place your order. Please contact the shop and quote the reference below.",
    skipped: "We have received your order.",
    slow: "This is taking longer than usual. Keep your order reference; the shop will confirm by email.",
  };
  var FRIENDLY = { missing: TEXT.required, string_pattern_mismatch: TEXT.pattern };

  /* --- prices: shown with Intl.NumberFormat; sums in whole minor units, never floats ------------ */

  function formatter(el, currency) {
    var holder = el.closest("[lang]");
    var lang = (holder && holder.getAttribute("lang")) || undefined;
    try {
      return new Intl.NumberFormat(lang, { style: "currency", currency: currency });
    } catch (e) {
      return null; // an unknown currency or language: keep the server's text
    }
  }

  /* "12.50" with 2 decimals -> 1250 (exact: the server writes every amount at its currency's scale). */
  function toMinor(amount, places) {
    var parts = String(amount).split(".");
    return Number(parts[0] + ((parts[1] || "") + "0".repeat(places)).slice(0, places));
  }

  function showAmount(el, minor, places) {
    var currency = el.getAttribute("data-ob-currency");
    var fmt = formatter(el, currency);
    var text = String(minor).padStart(places + 1, "0");
    var amount = places ? text.slice(0, -places) + "." + text.slice(-places) : text;
    el.setAttribute("data-ob-amount", amount);
    el.textContent = fmt ? fmt.format(Number(amount)) : amount + " " + currency;
  }

  function places(el) {
    return (el.getAttribute("data-ob-amount").split(".")[1] || "").length;
  }

  function formatAmounts(root) {
    root.querySelectorAll("[data-ob-amount]").forEach(function (el) {
      var d = places(el);
      showAmount(el, toMinor(el.getAttribute("data-ob-amount"), d), d);
    });
  }

  /* The total of the ticked rows whose quantity is a whole number in range. */
  function updateTotal(form) {
    var out = form.querySelector("[data-ob-total-value] [data-ob-amount]");
    if (!out) return;
    var d = places(out);
    var total = 0;
    itemRows(form).forEach(function (box) {
      var row = box.closest("[data-ob-price]");
      var qty = row && row.querySelector('input[type="number"]');
      if (!box.checked || !qty || !/^[0-9]{1,9}$/.test(qty.value.trim())) return;
      var n = Number(qty.value.trim());
      if ((qty.min && n < Number(qty.min)) || (qty.max && n > Number(qty.max))) return;
      total += toMinor(row.getAttribute("data-ob-price"), d) * n;
    });
    showAmount(out, total, d);
  }

  // Where the script may send the browser: an absolute http(s) URL only (never javascript:,
  // data: or anything else an answer might carry). The server checks the host as well.
  function webUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      var url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function newSubmissionId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); })
      .join("");
  }

  function errorSlot(form, name) {
    return form.querySelector('[data-ob-error-for="' + window.CSS.escape(name) + '"]');
  }

  function fieldOf(form, name) {
    if (name === "items") return form.querySelector("[data-ob-items]");
    var el = form.elements.namedItem(name);
    return el && el.nodeType === 1 ? el : null;
  }

  function focusTarget(field) {
    if (field && field.matches("[data-ob-items]")) return field.querySelector("input");
    return field;
  }

  function itemRows(form) {
    return Array.prototype.slice.call(form.querySelectorAll("[data-ob-items] input[type=checkbox]"));
  }

  /* Rows with a ticked item, in the order the intake turns them into lines (the form's order). */
  function chosenRows(form) {
    var rows = [];
    itemRows(form).forEach(function (box) {
      var m = /^items\[(\d+)\]/.exec(box.name);
      if (box.checked && m) rows.push(Number(m[1]));
    });
    return rows;
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-ob-error-for]").forEach(function (slot) { slot.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    var summary = form.querySelector("[data-ob-summary]");
    if (summary) summary.textContent = "";
  }

  function showErrors(form, errors, general) {
    var summary = form.querySelector("[data-ob-summary]");
    var list = document.createElement("ul");
    var first = null;
    errors.forEach(function (e) {
      var slot = errorSlot(form, e.name);
      var field = fieldOf(form, e.name);
      if (!slot || !field) {
        general.push(e.message);
        return;
      }
      if (slot.textContent) return; // one message per field
      slot.textContent = e.message;
      field.setAttribute("aria-invalid", "true");
      first = first || field;
      var li = document.createElement("li");
      var a = document.createElement("a");
      var target = focusTarget(field);
      a.href = "#" + (target && target.id ? target.id : "");
      a.textContent = labelOf(form, field) + ": " + e.message;
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        if (target) target.focus();
      });
      li.appendChild(a);
      list.appendChild(li);
    });
    general.forEach(function (message) {
      var li = document.createElement("li");
      li.textContent = message;
      list.appendChild(li);
    });
    if (summary) {
      var title = document.createElement("h2");
      title.className = "ob-summary-title";
      title.textContent = "There is a problem with your order";
      summary.textContent = "";
      summary.appendChild(title);
      summary.appendChild(list);
    }
    if (first) focusTarget(first).focus();
    else if (summary) summary.focus();
  }

  function labelOf(form, field) {
    if (field.matches("[data-ob-items]")) return field.querySelector("legend").textContent;
    var label = field.id && form.querySelector('label[for="' + window.CSS.escape(field.id) + '"]');
    return label ? label.textContent.replace(/\s*\*$/, "").trim() : field.name;
  }

  /* The browser-side checks: the limits are the page's attributes, generated from the server's model. */
  function clientErrors(form) {
    var errors = [];
    var chosen = chosenRows(form);
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || !errorSlot(form, el.name) || el.type === "checkbox") return;
      var row = /^items\[(\d+)\]\[quantity\]$/.exec(el.name);
      if (row && chosen.indexOf(Number(row[1])) < 0) return; // quantity of an item not chosen
      var message = checkField(el, row !== null);
      if (message) errors.push({ name: el.name, message: message });
    });
    var items = form.querySelector("[data-ob-items]");
    if (items) {
      var min = Number(items.getAttribute("data-min-lines") || 1);
      var max = Number(items.getAttribute("data-max-lines") || Infinity);
      if (chosen.length < min) errors.push({ name: "items", message: TEXT.noItems });
      else if (chosen.length > max) errors.push({ name: "items", message: "Choose at most " + max + " items." });
    }
    return errors;
  }

  function checkField(el, required) {
    if (el.hasAttribute("data-ob-upper")) el.value = el.value.toUpperCase();
    var value = el.value.trim();
    if (!value) return el.required || required ? TEXT.required : null;
    if (el.type === "number") {
      var v = el.validity;
      if (v.badInput || v.stepMismatch) return TEXT.number;
      if (v.rangeUnderflow || v.rangeOverflow) return "Enter a number from " + el.min + " to " + el.max + ".";
      return null;
    }
    if (el.type === "email" && el.validity.typeMismatch) return TEXT.email;
    if (el.minLength > 0 && value.length < el.minLength) return "Use at least " + el.minLength + " characters.";
    if (el.maxLength >= 0 && value.length > el.maxLength) return "Use at most " + el.maxLength + " characters.";
    if (el.pattern && !new RegExp("^(?:" + el.pattern + ")$", "u").test(value)) return TEXT.pattern;
    return null;
  }

  /* The server's {field, code, message} list; line errors name the row as posted (items[2][quantity]). */
  function serverErrors(form, fields) {
    return fields.map(function (f) {
      var name = f.field || "";
      var m = /^items\[(\d+)\](.*)$/.exec(name);
      if (m) {
        var row = "items[" + m[1] + "]";
        if (m[2] === "[quantity]") name = row + "[quantity]";
        else if (m[2] === "[sku]" && errorSlot(form, row + "[sku]")) name = row + "[sku]"; // e.g. UNKNOWN_ITEM
        else name = "items";
      }
      var message = FRIENDLY[f.code] || f.message || TEXT.failed;
      if (name === "items" && f.code === "too_short") message = TEXT.noItems;
      return { name: name, message: message };
    });
  }

  function setBusy(form, busy, text) {
    var button = form.querySelector("[data-ob-submit]");
    var status = form.querySelector("[data-ob-status]");
    form.setAttribute("aria-busy", busy ? "true" : "false");
    if (button) {
      button.disabled = busy;
      button.setAttribute("aria-busy", busy ? "true" : "false");
    }
    if (status) status.textContent = text || "";
  }

  function post(form) {
    var body = new URLSearchParams(new FormData(form));
    return window
      .fetch(form.action, {
        method: "POST",
        body: body, // urlencoded: a CORS "simple" request, no preflight from a shop's page
        headers: { Accept: "application/json" },
        credentials: "omit",
        mode: "cors",
      })
      .then(function (response) {
        return response.json().then(
          function (data) { return { status: response.status, data: data }; },
          function () { return { status: response.status, data: {} }; }
        );
      });
  }

  function submit(form, event) {
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return; // a second click while the first is in flight
    clearErrors(form);
    var errors = clientErrors(form);
    if (errors.length) {
      showErrors(form, errors, []);
      return;
    }
    setBusy(form, true, TEXT.submitting);
    post(form)
      .then(function (answer) {
        var data = answer.data || {};
        if (answer.status >= 200 && answer.status < 300 && data.tracking_id) {
          var checkout = webUrl(data.redirect_url);
          if (checkout) {
            setBusy(form, true, TEXT.redirecting);
            window.location.assign(checkout);
            return;
          }
          confirm(form, data.tracking_id);
          return;
        }
        setBusy(form, false, "");
        var error = data.error || {};
        var fields = error.fields || [];
        showErrors(form, serverErrors(form, fields), fields.length ? [] : [error.message || TEXT.failed]);
      })
      .catch(function () {
        setBusy(form, false, "");
        showErrors(form, [], [TEXT.network]);
      });
  }

  /* Replace the form with a confirmation that polls until the order is created or failed. */
  function confirm(form, trackingId) {
    var panel = document.createElement("div");
    panel.className = "ob-confirmation";
    panel.setAttribute("data-ob-confirmation", "");
    panel.setAttribute("data-ob-state", "PENDING");
    panel.setAttribute(
      "data-status-url",
      form.getAttribute("data-status-url").replace("{tracking_id}", encodeURIComponent(trackingId))
    );
    var heading = document.createElement("h2");
    heading.tabIndex = -1;
    heading.textContent = "Order received";
    var status = document.createElement("p");
    status.className = "ob-status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    status.setAttribute("data-ob-status", "");
    status.textContent = TEXT.pending;
    var ref = document.createElement("p");
    ref.textContent = "Order reference: ";
    var strong = document.createElement("strong");
    strong.className = "ob-reference";
    strong.textContent = trackingId;
    ref.appendChild(strong);
    panel.appendChild(heading);
    panel.appendChild(status);
    panel.appendChild(ref);
    form.parentNode.replaceChild(panel, form);
    heading.focus();
    poll(panel);
  }

  function poll(panel) {
    var url = new URL(panel.getAttribute("data-status-url"), document.baseURI).href;
    var started = Date.now();
    var wait = POLL_FIRST_MS;
    var status = panel.querySelector("[data-ob-status]");

    function show(state, text) {
      panel.setAttribute("data-ob-state", state);
      if (status.textContent !== text) status.textContent = text;
    }

    function again() {
      if (Date.now() - started > POLL_GIVE_UP_MS) {
        show("PENDING", TEXT.slow);
        return;
      }
      window.setTimeout(tick, wait);
      wait = Math.min(POLL_MAX_MS, Math.round(wait * 1.5));
    }

    function tick() {
      window
        .fetch(url, { headers: { Accept: "application/json" }, credentials: "omit", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return again();
          var pay = (data.destinations || [])
            .map(function (d) { return webUrl(d && d.redirect_url); })
            .filter(function (u) { return u; })[0];
          if (pay) {
            show("REDIRECTING", TEXT.redirecting);
            window.location.assign(pay);
          } else if (data.status === "SUCCEEDED") {
            show("SUCCEEDED", TEXT.created);
          } else if (data.status === "PARTIAL") {
            show("PARTIAL", TEXT.partial); // created somewhere: received; the shop completes the rest
          } else if (data.status === "FAILED") {
            show("FAILED", TEXT.orderFailed);
          } else if (data.status === "SKIPPED") {
            show("SKIPPED", TEXT.skipped);
          } else if (data.status === "CHECKING") {
            show("CHECKING", TEXT.checking); // it may still turn out created: keep looking
            again();
          } else {
            again();
          }
        })
        .catch(again);
    }

    again();
  }

  function enhance(form) {
    if (form.hasAttribute("data-ob-ready")) return;
    form.setAttribute("data-ob-ready", "");
    form.noValidate = true; // our checks, with messages next to the fields, instead of the browser's bubbles
    var id = form.querySelector('input[name="submission_id"]');
    if (id && !id.value) id.value = newSubmissionId(); // a static snippet: one id per page load
    form.querySelectorAll("[data-ob-upper]").forEach(function (el) {
      el.addEventListener("change", function () { el.value = el.value.toUpperCase(); });
    });
    form.addEventListener("submit", function (event) { submit(form, event); });
    formatAmounts(form);
    updateTotal(form);
    form.addEventListener("input", function () { updateTotal(form); });
    form.addEventListener("change", function () { updateTotal(form); });
  }

  function start() {
    document.querySelectorAll("form[data-orderbridge-form]").forEach(enhance);
    document.querySelectorAll("[data-ob-confirmation]").forEach(function (panel) {
      var state = panel.getAttribute("data-ob-state");
      if (state === "PENDING" || state === "CHECKING") poll(panel); // may still change by themselves
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
