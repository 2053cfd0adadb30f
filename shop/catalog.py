"""Products, the session cart, and their pages."""

from dataclasses import dataclass
from decimal import Decimal

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from .forms import AddToCartForm, CartLineForm
from .i18n import N_

bp = Blueprint("catalog", __name__)

MAX_QUANTITY = 99


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    description: str
    price: Decimal
    image: str


# Prices are in the settlement currency (SETTLEMENT_XML); Decimal, never float.
PRODUCTS = (
    Product(
        "mug",
        N_("Ledger mug"),
        N_("A 330 ml stoneware mug for long reconciliation nights."),
        Decimal("12.50"),
        "img/mug.svg",
    ),
    Product(
        "tee",
        N_("Hash T-shirt"),
        N_("Organic cotton, printed with the IPN checksum formula."),
        Decimal("24.00"),
        "img/tee.svg",
    ),
    Product(
        "cap",
        N_("Block cap"),
        N_("Six panels, one for each confirmation you wait for."),
        Decimal("18.90"),
        "img/cap.svg",
    ),
    Product(
        "notebook",
        N_("Dot notebook"),
        N_("A5, 120 pages, for writing down order UIDs by hand."),
        Decimal("9.75"),
        "img/notebook.svg",
    ),
    Product(
        "hoodie",
        N_("Sandbox hoodie"),
        N_("Warm enough for a server room; pockets for two hardware keys."),
        Decimal("49.00"),
        "img/hoodie.svg",
    ),
    Product(
        "stickers",
        N_("Sticker pack"),
        N_("Twelve vinyl stickers: statuses from new to done."),
        Decimal("4.20"),
        "img/stickers.svg",
    ),
)
PRODUCTS_BY_ID = {product.id: product for product in PRODUCTS}


def get_product(product_id):
    product = PRODUCTS_BY_ID.get(product_id)
    if product is None:
        abort(404)
    return product


def cart_quantities():
    """{product id: quantity} from the session, ignoring anything that is not a known product."""
    raw = session.get("cart")
    if not isinstance(raw, dict):
        return {}
    return {
        pid: qty
        for pid, qty in raw.items()
        if pid in PRODUCTS_BY_ID and isinstance(qty, int) and 0 < qty <= MAX_QUANTITY
    }


def cart_lines():
    """[(product, quantity, line total)] and the total, for the current session's cart."""
    lines = [
        (PRODUCTS_BY_ID[pid], qty, PRODUCTS_BY_ID[pid].price * qty)
        for pid, qty in cart_quantities().items()
    ]
    return lines, sum((line[2] for line in lines), Decimal(0))


def save_cart(quantities):
    session["cart"] = quantities


def empty_cart():
    session.pop("cart", None)


@bp.route("/")
def index():
    """The catalogue."""
    return render_template(
        "catalog/index.html",
        products=PRODUCTS,
        form=AddToCartForm(),
        currency=current_app.config["SETTLEMENT_XML"],
    )


@bp.post("/cart/add")
def add_to_cart():
    form = AddToCartForm()
    if not form.validate_on_submit():
        flash(_("Choose a quantity from 1 to 99."), "error")
        return redirect(url_for("catalog.index"))
    product = get_product(form.product_id.data)
    quantities = cart_quantities()
    quantities[product.id] = min(MAX_QUANTITY, quantities.get(product.id, 0) + form.quantity.data)
    save_cart(quantities)
    flash(_("%(name)s is in your cart.", name=_(product.name)), "success")
    return redirect(url_for("catalog.cart"))


@bp.route("/cart")
def cart():
    lines, total = cart_lines()
    forms = {
        product.id: CartLineForm(product_id=product.id, quantity=qty) for product, qty, _ in lines
    }
    return render_template(
        "catalog/cart.html",
        lines=lines,
        total=total,
        forms=forms,
        currency=current_app.config["SETTLEMENT_XML"],
    )


@bp.post("/cart/update")
def update_cart():
    """Change a line's quantity, or remove it (the remove button, or quantity 0)."""
    form = CartLineForm()
    if not form.validate_on_submit():
        flash(_("Choose a quantity from 0 to 99."), "error")
        return redirect(url_for("catalog.cart"))
    product = get_product(form.product_id.data)
    quantities = cart_quantities()
    if form.remove.data or form.quantity.data == 0:
        quantities.pop(product.id, None)
        flash(_("%(name)s was removed.", name=_(product.name)), "success")
    else:
        quantities[product.id] = form.quantity.data
    save_cart(quantities)
    return redirect(url_for("catalog.cart"))
