// Stock keeping: a workspace module other TypeScript files import (cross-file context tests).

export class Inventory {
  private stock = new Map<string, number>();

  restockFromSupplier(sku: string, cartons: number, unitsPerCarton: number): void {
    const units = cartons * unitsPerCarton;
    this.stock.set(sku, (this.stock.get(sku) ?? 0) + units);
  }

  unitsOnHand(sku: string): number {
    return this.stock.get(sku) ?? 0;
  }
}

export function reorderThreshold(
  dailyDemand: number,
  leadTimeDays: number,
  safetyStockUnits: number,
): number {
  return dailyDemand * leadTimeDays + safetyStockUnits;
}
