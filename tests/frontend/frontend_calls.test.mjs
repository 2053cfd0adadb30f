// The platform's own web front-end (GitHub NRepeat/exchanger-client-web), its calls replayed
// against a live sandbox in the same shapes: methods, headers, bodies and parameter types. Every
// property that front-end reads on the way is checked for presence and type, so a merchant
// who builds on the sandbox meets the answers the real site gives that front-end.
//
// Run by tests/frontend/test_frontend_calls.py (SANDBOX_URL set); Node built-ins only.
import assert from "node:assert/strict";
import { test } from "node:test";

const BASE = process.env.SANDBOX_URL;
const API = `${BASE}/service/api/v1/`;
const FS = `${BASE}/service/fs`; // the front-end's fsPath: where image urls point
const LANG = "en";

// Every call: Lang and the JSON content type (plugins/rest-api.js); Accept as axios sends it;
// writes from a browser also carry the Csrf-Token cookie's value.
async function api(method, path, params) {
  const headers = {
    Lang: LANG,
    "Content-Type": "application/json",
    Accept: "application/json, text/plain, */*",
  };
  let url = `${API}${path}/`;
  let body;
  if (method === "GET") {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined) query.append(key, String(value));
    }
    if ([...query].length) url += `?${query}`;
  } else {
    headers["Csrf-Token"] = "csrf-cookie-value";
    body = JSON.stringify(params);
  }
  const response = await fetch(url, { method, headers, body });
  assert.equal(response.status, 200, `${method} ${path}: HTTP ${response.status}`);
  const answer = await response.json();
  assert.equal(answer.success, true, `${method} ${path}: ${JSON.stringify(answer.error)}`);
  assert.equal(typeof answer.data, "object", `${path}: data`);
  return answer.data;
}

// -- what the front-end's code does with each value, as type checks ------------------------

function isString(value, where) {
  assert.equal(typeof value, "string", `${where} must be a string, is ${JSON.stringify(value)}`);
}

function isNumber(value, where) {
  assert.equal(typeof value, "number", `${where} must be a number, is ${JSON.stringify(value)}`);
  assert.ok(Number.isFinite(value), `${where} must be finite`);
}

// Amounts and rates go through Number() or new BigNumber(): a number or a numeric string.
function isNumeric(value, where) {
  assert.ok(
    typeof value === "number" || (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value)),
    `${where} must be a number or a numeric string, is ${JSON.stringify(value)}`,
  );
}

function isList(value, where) {
  assert.ok(Array.isArray(value), `${where} must be a list, is ${JSON.stringify(value)}`);
}

function isDate(value, where) {
  isString(value, where);
  assert.ok(!Number.isNaN(Date.parse(value)), `${where} must be a date, is ${value}`);
}

// Texts split on "##" into languages (instructions, paymentDetails.account).
function hasLanguage(text, where) {
  isString(text, where);
  const parts = text.split("##");
  const own = parts.indexOf(LANG);
  assert.ok(own === -1 || parts[own + 1].length > 0, `${where} has an empty ${LANG} part`);
}

// $rest.urlImg(image): image.files (or image itself) is a list of {type, url}; the page loads
// fsPath + url of the size it wants. Each size a page asks for must be there and load.
const images = new Map();
async function isImage(image, where, sizes) {
  assert.ok(image && typeof image === "object", `${where} must be an object`);
  const files = image.files || image;
  isList(files, `${where}.files`);
  const bySize = {};
  for (const [index, file] of files.entries()) {
    isString(file.type, `${where}.files[${index}].type`);
    isString(file.url, `${where}.files[${index}].url`);
    bySize[file.type] = file.url;
  }
  for (const size of sizes) {
    assert.ok(bySize[size], `${where} has no ${size} file`);
    const url = FS + bySize[size];
    if (!images.has(url)) {
      const response = await fetch(url);
      const body = await response.text();
      images.set(url, [response.status, response.headers.get("content-type"), body]);
    }
    const [status, type, body] = images.get(url);
    assert.equal(status, 200, `${url}: HTTP ${status}`);
    assert.match(type, /^image\//, `${url} is ${type}`);
    assert.match(body, /<svg[\s>]/, `${url} is no picture`);
  }
}

function isField(field, where) {
  isString(field._id, `${where}._id`);
  isString(field.name, `${where}.name`);
  // The form runs value.match(field.regexp) and shows an options select when present.
  isString(field.regexp, `${where}.regexp`);
  assert.equal(typeof field.required, "boolean", `${where}.required`);
  if (field.options !== undefined) {
    isList(field.options, `${where}.options`);
    for (const option of field.options) {
      isString(option.name, `${where}.options[].name`);
      isString(option.value, `${where}.options[].value`);
    }
  }
}

function isInstructions(list, where, steps) {
  isList(list, where);
  for (const [index, item] of list.entries()) {
    isString(item.step, `${where}[${index}].step`);
    hasLanguage(item.content, `${where}[${index}].content`);
  }
  for (const step of steps) {
    assert.ok(
      list.some((item) => item.step === step),
      `${where} has no ${step} text`,
    );
  }
}

// The order page, the payment page and the panels for each status (pages/order/_order/_secret.vue,
// pages/payment/_order/_secret.vue, components/order/*.vue).
async function isOrder(order, where) {
  isString(order._id, `${where}._id`); // compared with the updateOrder socket message
  isNumber(order.uid, `${where}.uid`);
  isString(order.status, `${where}.status`);
  isNumeric(order.inAmount, `${where}.inAmount`);
  isNumeric(order.outAmount, `${where}.outAmount`);
  isDate(order.createdAt, `${where}.createdAt`);
  isDate(order.expiresAt, `${where}.expiresAt`);
  // new BigNumber(order.rate): "1 : rate" from 1 up, "1/rate : 1" below.
  isNumber(order.rate, `${where}.rate`);
  assert.ok(order.rate > 0, `${where}.rate must be above 0`);
  for (const group of ["fromValues", "toValues", "routeValues"]) {
    isList(order[group], `${where}.${group}`);
    for (const value of order[group]) {
      isString(value.name, `${where}.${group}[].name`);
      isString(value.value, `${where}.${group}[].value`);
    }
  }
  // The done and cancelled panels link to it with ?status= appended, when it is set.
  isString(order.clientCallbackUrl, `${where}.clientCallbackUrl`);
  const route = order.route;
  for (const side of ["from", "to"]) {
    isString(route[side].name, `${where}.route.${side}.name`);
    isString(route[side].symbol, `${where}.route.${side}.symbol`);
    await isImage(route[side].image, `${where}.route.${side}.image`, ["medium"]);
  }
  // Every status panel filters route.instructions by its step.
  isInstructions(route.instructions, `${where}.route.instructions`, []);
  // The waiting panel (wait.vue) reads paymentDetails without a guard.
  const details = route.from.paymentDetails;
  assert.ok(details && typeof details === "object", `${where}.route.from.paymentDetails`);
  return details;
}

function isWaitingPanel(details, order, where) {
  // No merchant widget (its template is evaluated as code) and no free text: the step list.
  assert.ok(!details.merchantEnabled, `${where}.merchantEnabled`);
  assert.ok(!details.manualPaymentTextEnabled, `${where}.manualPaymentTextEnabled`);
  hasLanguage(details.account, `${where}.account`);
  assert.ok(details.account.length > 0, `${where}.account is empty: nowhere to pay`);
  if (details.showStepLink !== false) isString(details.linkPS, `${where}.linkPS`);
  if (details.showStepComment !== false && details.commentTemplate) {
    isString(details.commentTemplate, `${where}.commentTemplate`);
  }
  assert.notEqual(details.showIPaidBtn, false, `${where}: no "I have paid" button`);
  return order;
}

// -- the journey ---------------------------------------------------------------------------

test("route list -> route -> create -> order page -> payment page -> I have paid -> reload", async (t) => {
  let summary;
  let route;
  let created;

  await t.test("route list (store/exchange.js routes)", async () => {
    const data = await api("GET", "public/exchanger/route/get");
    isList(data.routes, "routes");
    assert.ok(data.routes.length > 0, "no routes");
    for (const [index, item] of data.routes.entries()) {
      const where = `routes[${index}]`;
      isString(item.routeId, `${where}.routeId`);
      assert.equal(typeof item.isShowWeb, "boolean", `${where}.isShowWeb`);
      for (const side of ["from", "to"]) {
        isString(item[side].name, `${where}.${side}.name`);
        isString(item[side].symbol, `${where}.${side}.symbol`);
        isString(item[side].xml, `${where}.${side}.xml`); // .indexOf("CASH")
        await isImage(item[side].image, `${where}.${side}.image`, ["small"]);
      }
      isNumber(item.from.positionIn, `${where}.from.positionIn`); // the lists' sort order
      isNumber(item.to.positionOut, `${where}.to.positionOut`);
      isNumeric(item.rate.amount, `${where}.rate.amount`); // Number(el.rate.amount)
      isString(item.seo.friendlyURL, `${where}.seo.friendlyURL`);
    }
    summary = data.routes.find((item) => item.from.xml === "BTC" && item.isShowWeb);
    assert.ok(summary, "no BTC route to take");
  });

  await t.test("route (exchangeForms/v2.vue changeCurrency)", async () => {
    const data = await api("GET", "public/exchanger/route/get/one", {
      id: summary.routeId,
      lang: LANG,
    });
    route = data.route;
    isString(route.routeId, "route.routeId");
    for (const side of ["from", "to"]) {
      isString(route[side].name, `route.${side}.name`);
      isString(route[side].symbol, `route.${side}.symbol`);
      isNumber(route[side].decimal, `route.${side}.decimal`);
      isList(route[side].fields, `route.${side}.fields`);
      route[side].fields.forEach((field, i) => isField(field, `route.${side}.fields[${i}]`));
      await isImage(route[side].image, `route.${side}.image`, ["small"]);
    }
    isNumeric(route.from.min, "route.from.min");
    isNumeric(route.from.max, "route.from.max");
    isList(route.from.discounts, "route.from.discounts"); // .find() without a guard
    for (const tier of route.from.discounts) {
      isNumeric(tier.amountMoreThan, "route.from.discounts[].amountMoreThan");
      isNumeric(tier.discountPercent, "route.from.discounts[].discountPercent");
    }
    isList(route.fields, "route.fields");
    route.fields.forEach((field, i) => isField(field, `route.fields[${i}]`));
    for (const key of ["in", "out", "rateFullNumber", "outFeeAmount", "amount"]) {
      isNumeric(route.rate[key], `route.rate.${key}`);
    }
    isInstructions(route.instructions, "route.instructions", ["createOrder"]);
  });

  await t.test("create (v2.vue create, store/exchange.js createOrder)", async () => {
    const valueFor = (field) => (/mail/i.test(field.name) ? "buyer@example.com" : undefined);
    const wallet = {
      BTC: "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
      USDTTRC20: "TMerchantPayoutWa11etSandboxDemoXq",
    };
    const values = (fields, fallback) =>
      fields
        .filter((field) => field.required)
        .map((field) => ({ key: field._id, value: valueFor(field) || fallback }));
    // The form's model: amount as the input's string, no partner (undefined: left out).
    created = await api("POST", "public/exchanger/order/create", {
      routeId: route.routeId,
      fromValues: values(route.from.fields, wallet[route.from.xml]),
      toValues: values(route.to.fields, wallet[route.to.xml]),
      routeValues: values(route.fields, ""),
      email: "",
      captcha: "",
      agreement: true,
      amount: String(Number(route.from.min) * 10),
      skipPreview: undefined,
      hideOutData: undefined,
      lang: LANG,
      partner: undefined,
    });
    // Then router.push(`/order/${res.uid}/${res.secret}/`).
    isNumber(created.uid, "order.uid");
    isString(created.secret, "order.secret");
    isString(created._id, "order._id");
  });

  await t.test("order page, confirm step (pages/order, components/order/confirmation.vue)", async () => {
    const order = (
      await api("GET", "public/exchanger/order/get", {
        type: "order",
        orderUID: String(created.uid),
        orderSecret: created.secret,
      })
    ).order;
    await isOrder(order, "order");
    // Created by the form, without skipPreview: the payer confirms first.
    assert.equal(order.status, "new");
    assert.equal(order.uid, created.uid);
    // The confirm button emits "waitPayment"; the page PUTs it, then reloads (no type).
    const changed = await api("PUT", "public/exchanger/order/update-status", {
      orderUID: String(created.uid),
      orderSecret: created.secret,
      status: "waitPayment",
    });
    assert.deepEqual(
      [changed.oldStatus, changed.newStatus],
      ["new", "waitPayment"],
      JSON.stringify(changed),
    );
    const reloaded = (
      await api("GET", "public/exchanger/order/get", {
        orderUID: String(created.uid),
        orderSecret: created.secret,
      })
    ).order;
    await isOrder(reloaded, "order");
    assert.equal(reloaded.status, "waitPayment");
  });

  await t.test("payment page, waiting (pages/payment, components/order/wait.vue)", async () => {
    const order = (
      await api("GET", "public/exchanger/order/get", {
        type: "payment",
        orderUID: String(created.uid),
        orderSecret: created.secret,
      })
    ).order;
    const details = await isOrder(order, "order");
    assert.equal(order.status, "waitPayment");
    isWaitingPanel(details, order, "order.route.from.paymentDetails");
    // wait.vue's "log in to" step takes the picture from image.files.
    await isImage(order.route.from.image.files, "order.route.from.image.files", ["small"]);
    isInstructions(order.route.instructions, "order.route.instructions", ["payment"]);
  });

  await t.test('"I have paid", then the reload (components/order/progress.vue)', async () => {
    const changed = await api("PUT", "public/exchanger/order/update-status", {
      orderUID: String(created.uid),
      orderSecret: created.secret,
      status: "inProgress",
    });
    assert.deepEqual([changed.oldStatus, changed.newStatus], ["waitPayment", "inProgress"]);
    const order = (
      await api("GET", "public/exchanger/order/get", {
        orderUID: String(created.uid),
        orderSecret: created.secret,
      })
    ).order;
    await isOrder(order, "order");
    assert.equal(order.status, "inProgress");
    isInstructions(order.route.instructions, "order.route.instructions", ["resultOrder"]);
  });
});

test("the amount to receive is sent as a negative number and answered as amounts", async () => {
  const data = await api("GET", "public/exchanger/route/get");
  const summary = data.routes.find((item) => item.from.xml === "BTC" && item.isShowWeb);
  const route = (
    await api("GET", "public/exchanger/route/get/one", { id: summary.routeId, lang: LANG })
  ).route;
  const required = (fields, value) =>
    fields
      .filter((f) => f.required)
      .map((f) => ({ key: f._id, value: /mail/i.test(f.name) ? "a@example.com" : value }));
  // v2.vue's correctFrom: the amount to receive, negated, as a number.
  const created = await api("POST", "public/exchanger/order/create", {
    routeId: route.routeId,
    fromValues: required(route.from.fields, "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"),
    toValues: required(route.to.fields, "TMerchantPayoutWa11etSandboxDemoXq"),
    routeValues: required(route.fields, ""),
    email: "",
    captcha: "",
    agreement: true,
    amount: -500,
    lang: LANG,
  });
  isNumber(created.uid, "order.uid");
  isNumeric(created.inAmount, "order.inAmount");
  assert.ok(Number(created.outAmount) >= 500, `receives ${created.outAmount}, asked 500`);
});

test("the deposit pop-up's create skips the confirm step; cancel shows the way back", async () => {
  // components/modals/depositAddress.vue: skipPreview and hideOutData, then /payment/.
  const data = await api("GET", "public/exchanger/route/get");
  const summary = data.routes.find((item) => item.from.xml === "BTC" && item.isShowWeb);
  const route = (
    await api("GET", "public/exchanger/route/get/one", { id: summary.routeId, lang: LANG })
  ).route;
  const required = (fields, value) =>
    fields
      .filter((f) => f.required)
      .map((f) => ({ key: f._id, value: /mail/i.test(f.name) ? "a@example.com" : value }));
  const back = "http://127.0.0.1:9/orders/abc/return";
  const created = await api("POST", "public/exchanger/order/create", {
    routeId: route.routeId,
    fromValues: required(route.from.fields, "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"),
    toValues: required(route.to.fields, "TMerchantPayoutWa11etSandboxDemoXq"),
    routeValues: required(route.fields, ""),
    agreement: true,
    email: "a@example.com",
    lang: LANG,
    amount: Number(route.from.min) * 10,
    skipPreview: true,
    hideOutData: true,
    clientCallbackUrl: back,
  });
  const ask = (type) =>
    api("GET", "public/exchanger/order/get", {
      type,
      orderUID: String(created.uid),
      orderSecret: created.secret,
    }).then((answer) => answer.order);
  const waiting = await ask("payment");
  isWaitingPanel(await isOrder(waiting, "order"), waiting, "order.route.from.paymentDetails");
  assert.equal(waiting.status, "waitPayment", "skipPreview: no confirm step");
  assert.deepEqual(waiting.toValues, [], "hideOutData: the payout details are hidden");
  // The page's cancel button: PUT deleted, then the reload shows the deleted panel, whose
  // button goes to clientCallbackUrl + "?status=error".
  await api("PUT", "public/exchanger/order/update-status", {
    orderUID: String(created.uid),
    orderSecret: created.secret,
    status: "deleted",
  });
  const cancelled = await ask(undefined);
  await isOrder(cancelled, "order");
  assert.equal(cancelled.status, "deleted");
  assert.equal(cancelled.clientCallbackUrl, back);
  isInstructions(cancelled.route.instructions, "order.route.instructions", ["deleteOrder"]);
});
